# Order independence (consumer/reconcile.c over rules.c, subject_state.c and
# retract.c): every arrival order of generated subjects' histories, with
# amendments, withdrawals, replays and restarts, ends with the alerts the
# rules raise from the results in time order. Pure modules, no services;
# bounded to seconds (`test_order_property --figures N` is the long run,
# bench/order_property).
vigil_test(test_order_property LABEL unit TIMEOUT 120
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_order_property.c)
vigil_test(test_reconcile LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_reconcile.c)
