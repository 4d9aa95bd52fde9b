# vigil mllp with the broker stopped mid-stream (issue 16): no AA for a
# message not on Kafka, AE (207, resend) while down, AA again after, and
# after the engine's resend a real worker stores every observation once.
vigil_script_test(fault_mllp_broker LABEL fault TIMEOUT 300
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/fault/test_mllp_broker.py)
