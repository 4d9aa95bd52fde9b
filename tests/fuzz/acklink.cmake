# libFuzzer targets for what the acknowledgement channels read from anyone:
# the link token and key file (alerting/acklink.c), the inbound SMS webhook
# body and reply text (console/form.c, console/sms_inbound.c).
vigil_fuzz_test(fuzz_acklink SECONDS 15 LIBS vigil_alerting vigil_common)
vigil_fuzz_test(fuzz_inbound SECONDS 15 LIBS vigil_console vigil_alerting vigil_common)
