vigil_script_test(clinical_cases LABEL integration TIMEOUT 120
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/clinical/run_cases.py)
