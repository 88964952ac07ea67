/* window manager: placeholder until issue 5 lands */
typedef int shmx__window_placeholder;
