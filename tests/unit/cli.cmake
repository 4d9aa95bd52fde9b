vigil_script_test(cli_help LABEL unit TIMEOUT 30
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cli.sh)
