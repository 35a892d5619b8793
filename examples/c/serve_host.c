/* serve_host.c: a C host of the timer library. It links libmy_timer and
 * lets the library serve itself; see "Serving from C" in the README. */
#include <stdio.h>

#include "my_timer.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: serve_host ADDRESS   (tcp:HOST:PORT or unix:PATH)\n");
        return 2;
    }
    return my_timer_serve(argv[1]);
}
