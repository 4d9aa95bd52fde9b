# libFuzzer target for escalation policy files (alerting/policy.c).
vigil_fuzz_test(fuzz_policy SECONDS 15 LIBS vigil_alerting)
