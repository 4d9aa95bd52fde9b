# libFuzzer target for the SMS gateway's answer body, sms_parse_sid()
# (VIGIL_FUZZ builds only; see codec.cmake for the pattern).
add_executable(fuzz_sms ${CMAKE_CURRENT_LIST_DIR}/fuzz_sms.c)
target_link_libraries(fuzz_sms PRIVATE vigil_alerting vigil_common)
target_link_options(fuzz_sms PRIVATE -fsanitize=fuzzer)
vigil_warnings(fuzz_sms)

# The run adds what it finds to its corpus: work on a fresh copy in the
# build tree, never in tests/fuzz/corpus/sms.
set(_fuzz_sms_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/sms)
add_test(NAME fuzz_sms
  COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && cp \"$2\"/* \"$1\"/ && exec \"$3\" -max_total_time=15 -rss_limit_mb=1024 \"$1\""
          fuzz_sms ${_fuzz_sms_corpus} ${CMAKE_CURRENT_LIST_DIR}/corpus/sms
          $<TARGET_FILE:fuzz_sms>)
set_tests_properties(fuzz_sms PROPERTIES LABELS fuzz TIMEOUT 120)
