# The concurrency kit (common/kit: deadline, chan, ctx, waitgroup, sem, snapshot):
# one program per module plus the thread-leak test. Labelled kit as well as
# unit, so scripts/test can run them under ThreadSanitizer (ctest -L kit).
foreach(_kit chan ctx wg sem snapshot leak)
  vigil_test(kit_${_kit} LABEL unit TIMEOUT 30
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_kit_${_kit}.c)
  set_tests_properties(kit_${_kit} PROPERTIES LABELS "unit;kit")
endforeach()
