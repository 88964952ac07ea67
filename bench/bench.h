/*
 * bench.h -- the core benchmark suite (issue 2) as a library entry point.
 *
 * `shmx-bench` and `shmx bench` both call shmx_bench_main() with their
 * arguments (argv[0] is the program name):
 *   --json           one JSON object per line instead of a table
 *   --quick          short run (smoke tests; figures are not meaningful)
 *   --filter SUBSTR  only cases whose name contains SUBSTR (and the
 *                    baselines they are compared with)
 *   --list           print the case names and exit
 *   --help
 * Returns 0 when every selected case ran (targets missed are reported, not
 * failures), 1 when a case could not run, 2 on a usage error.
 */
#ifndef SHMX_BENCH_H
#define SHMX_BENCH_H

#ifdef __cplusplus
extern "C" {
#endif

int shmx_bench_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* SHMX_BENCH_H */
