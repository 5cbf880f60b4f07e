/*
 * flamegraph.h — flame graphs of a symbolized profile: folded stacks
 * ("outer;...;inner value" lines, the input of flamegraph.pl, speedscope,
 * inferno) and a self-contained interactive SVG.
 *
 * Design: stacks are merged into a tree (root "all", children by function,
 * ordered by name as flamegraph.pl does), each node's value being the sum of
 * the chosen metric over the stacks through it. The SVG is an icicle (the
 * root on top, where the eye starts) under a title with the total, the dump
 * and the sampling rate; frames are coloured by the module their code is in
 * (executable or library), with a legend of each module's share. One <g>
 * per node wide enough to see (>= 0.1 px), with data attributes (x, width in
 * value units, depth, module) that the embedded script uses: hover shows the
 * frame, its file, module, value and share in a status line; click zooms
 * into a frame (its ancestors stretch to full width, dimmed; unrelated
 * frames hide; the height shrinks to the levels left); "Reset zoom" and
 * Escape restore; "Search" (Ctrl-F) paints the frames a regular expression
 * matches and sums them. The width follows the window (viewBox). No external
 * resources.
 */
#ifndef AP_CLI_FLAMEGRAPH_H
#define AP_CLI_FLAMEGRAPH_H

#include <stdio.h>

#include "profile.h"

/* Writes folded stacks of metric m (stacks with a zero or negative value
 * are left out). */
void ap_flame_folded(FILE *out, const ap_profile *p, int metric);
/* Writes the SVG; title and subtitle (the sampling note) are shown on top. */
void ap_flame_svg(FILE *out, const ap_profile *p, int metric, const char *title,
                  const char *subtitle);

#endif
