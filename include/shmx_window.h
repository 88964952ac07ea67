/*
 * shmx_window.h -- sliding-window memory maps over large files.
 * (Placeholder: the window manager area is being written; see issue 5.)
 */
#ifndef SHMX_WINDOW_H
#define SHMX_WINDOW_H
#endif
