# The worker's retraction policy (consumer/retract.c) and the subject memory
# it works on (consumer/subject_state.c raised alerts, consumer/subject_cache.c):
# pure modules, no services.
vigil_test(test_retract LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_retract.c)
