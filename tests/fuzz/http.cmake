# libFuzzer target for the operations endpoint's request handling (httpd).
vigil_fuzz_test(fuzz_http SECONDS 15 LIBS vigil_common)
