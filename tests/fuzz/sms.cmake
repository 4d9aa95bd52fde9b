# libFuzzer target for the SMS gateway's answer body, sms_parse_sid().
vigil_fuzz_test(fuzz_sms SECONDS 15 LIBS vigil_alerting vigil_common)
