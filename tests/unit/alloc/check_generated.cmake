# Regenerates the size-class table and fails if it differs from the checked-in copy.
execute_process(COMMAND ${GEN} ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mksizeclasses failed (${rc}): a bound is broken")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT} ${REF} RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
  message(FATAL_ERROR "alloc/size_classes.inc is stale: regenerate it with mksizeclasses")
endif()
