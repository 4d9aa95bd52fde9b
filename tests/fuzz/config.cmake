# libFuzzer target for the configuration file (config_load_file)
# (VIGIL_FUZZ builds only; see codec.cmake for the pattern).
add_executable(fuzz_config ${CMAKE_CURRENT_LIST_DIR}/fuzz_config.c)
target_link_libraries(fuzz_config PRIVATE vigil_common)
target_link_options(fuzz_config PRIVATE -fsanitize=fuzzer)
vigil_warnings(fuzz_config)

# The run adds what it finds to its corpus: work on a fresh copy in the
# build tree, never in tests/fuzz/corpus/config.
set(_fuzz_config_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/config)
add_test(NAME fuzz_config
  COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && cp \"$2\"/* \"$1\"/ && exec \"$3\" -max_total_time=15 -rss_limit_mb=1024 \"$1\""
          fuzz_config ${_fuzz_config_corpus} ${CMAKE_CURRENT_LIST_DIR}/corpus/config
          $<TARGET_FILE:fuzz_config>)
set_tests_properties(fuzz_config PROPERTIES LABELS fuzz TIMEOUT 120)
