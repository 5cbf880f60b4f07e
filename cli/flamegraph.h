/*
 * flamegraph.h — flame graphs of a symbolized profile: folded stacks
 * ("outer;...;inner value" lines, the input of flamegraph.pl, speedscope,
 * inferno) and a self-contained interactive SVG.
 *
 * Design: stacks are merged into a tree (root "all", children by function,
 * ordered by name as flamegraph.pl does), each node's value being the sum of
 * the chosen metric over the stacks through it. The SVG draws one <g> per
 * node wide enough to see (>= 0.1 px), with data attributes (x, width in
 * value units, depth) that the embedded script uses: hover shows the frame,
 * its value and share in a status line; click zooms into a frame (its
 * ancestors stretch to full width, dimmed; unrelated frames hide); a "Reset
 * zoom" text and Escape restore. No external resources.
 */
#ifndef AP_CLI_FLAMEGRAPH_H
#define AP_CLI_FLAMEGRAPH_H

#include <stdio.h>

#include "profile.h"

/* Writes folded stacks of metric m (stacks with a zero or negative value
 * are left out). */
void ap_flame_folded(FILE *out, const ap_profile *p, int metric);
/* Writes the SVG; title is shown at the top. */
void ap_flame_svg(FILE *out, const ap_profile *p, int metric, const char *title);

#endif
