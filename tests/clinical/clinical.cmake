vigil_script_test(clinical_cases LABEL integration TIMEOUT 120
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/clinical/run_cases.py)
# Generated histories in several arrival orders, with a worker restart half
# way, through the real pipeline: the same standing alerts in every order.
vigil_script_test(clinical_order_e2e LABEL integration TIMEOUT 180
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/clinical/order_e2e.py)
