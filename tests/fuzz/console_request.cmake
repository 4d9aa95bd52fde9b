# libFuzzer target for the console's request parsing (query, cookies, JSON
# bodies, API paths).
vigil_fuzz_test(fuzz_console_request SECONDS 15 LIBS vigil_console)
