vigil_test(test_metrics_httpd LABEL unit TIMEOUT 60 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_metrics_httpd.c)
