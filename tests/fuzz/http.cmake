# libFuzzer target for the operations endpoint's request handling (httpd)
# (VIGIL_FUZZ builds only; see codec.cmake for the pattern).
add_executable(fuzz_http ${CMAKE_CURRENT_LIST_DIR}/fuzz_http.c)
target_link_libraries(fuzz_http PRIVATE vigil_common)
target_link_options(fuzz_http PRIVATE -fsanitize=fuzzer)
vigil_warnings(fuzz_http)

# The run adds what it finds to its corpus: work on a fresh copy in the
# build tree, never in tests/fuzz/corpus/http.
set(_fuzz_http_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/http)
add_test(NAME fuzz_http
  COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && cp \"$2\"/* \"$1\"/ && exec \"$3\" -max_total_time=15 -rss_limit_mb=1024 \"$1\""
          fuzz_http ${_fuzz_http_corpus} ${CMAKE_CURRENT_LIST_DIR}/corpus/http
          $<TARGET_FILE:fuzz_http>)
set_tests_properties(fuzz_http PROPERTIES LABELS fuzz TIMEOUT 120)
