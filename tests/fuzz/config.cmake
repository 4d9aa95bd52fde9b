# libFuzzer target for the configuration file (config_load_file).
vigil_fuzz_test(fuzz_config SECONDS 15 LIBS vigil_common)
