# alerting/policy.c: escalation policy files and their validation (issue
# #14, `vigil policy check`). No services.
vigil_test(test_policy LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_policy.c)
