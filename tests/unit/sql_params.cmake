# Every SQL statement is parameterised (issue 7, item 5): a static check of
# the C sources, and a self-test that planted string-built SQL is caught.
vigil_script_test(sql_params LABEL unit TIMEOUT 30
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/unit/check_sql_params.py ${PROJECT_SOURCE_DIR})
vigil_script_test(sql_params_planted LABEL unit TIMEOUT 60
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/unit/check_sql_params.py --self-test ${PROJECT_SOURCE_DIR})
