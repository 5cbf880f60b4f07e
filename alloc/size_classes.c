/*
 * size_classes.c — instantiates the generated size-class table. The macros in
 * size_classes.inc repeat those in size_classes.h; a mismatch is a compile
 * error ("redefined"), so the header cannot drift from the table.
 */
#include "size_classes.h"

#include "size_classes.inc"
