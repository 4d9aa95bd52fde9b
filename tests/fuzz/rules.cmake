# libFuzzer target for the rules YAML (rules_parse)
# (VIGIL_FUZZ builds only; see codec.cmake for the pattern).
add_executable(fuzz_rules ${CMAKE_CURRENT_LIST_DIR}/fuzz_rules.c)
target_link_libraries(fuzz_rules PRIVATE vigil_consumer vigil_common)
target_link_options(fuzz_rules PRIVATE -fsanitize=fuzzer)
vigil_warnings(fuzz_rules)

# The run adds what it finds to its corpus: work on a fresh copy in the
# build tree, never in tests/fuzz/corpus/rules.
set(_fuzz_rules_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/rules)
add_test(NAME fuzz_rules
  COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && cp \"$2\"/* \"$1\"/ && exec \"$3\" -max_total_time=15 -rss_limit_mb=1024 \"$1\""
          fuzz_rules ${_fuzz_rules_corpus} ${CMAKE_CURRENT_LIST_DIR}/corpus/rules
          $<TARGET_FILE:fuzz_rules>)
set_tests_properties(fuzz_rules PROPERTIES LABELS fuzz TIMEOUT 120)
