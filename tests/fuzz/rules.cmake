# libFuzzer target for the rules YAML (rules_parse).
vigil_fuzz_test(fuzz_rules SECONDS 15 LIBS vigil_consumer vigil_common)
