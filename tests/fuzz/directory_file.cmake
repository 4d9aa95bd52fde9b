# libFuzzer target for directory files in YAML (alerting/directory_file.c).
vigil_fuzz_test(fuzz_directory_file SECONDS 15 LIBS vigil_alerting)
