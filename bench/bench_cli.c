/* shmx-bench: the core benchmark suite (see bench.h for options). */
#include "bench.h"

int main(int argc, char **argv) { return shmx_bench_main(argc, argv); }
