# sms_parse_sid() (alerting/sms.c) on the gateway's answer: regressions
# from fuzz_sms (tests/fuzz/sms.cmake). No services.
vigil_test(test_sms_sid LABEL unit TIMEOUT 30
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sms_sid.c)
