# The rules engine (consumer/rules.c, ctcae.c, subject_state.c): pure
# modules, no services.
vigil_test(rules_parse LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rules_parse.c)
vigil_test(rules_ctcae LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ctcae.c)
vigil_test(rules_eval LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rules_eval.c)
