# Regression inputs found by the fuzz_http libFuzzer target (issue 7, item 4).
vigil_test(httpd_fuzz_regress LABEL unit TIMEOUT 60
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_httpd_fuzz.c)
