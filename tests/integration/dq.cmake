# Data-quality findings through the real worker (codes, units, times) and
# `vigil dq report` over them, against the local PostgreSQL and broker.
vigil_script_test(dq_report LABEL integration TIMEOUT 120
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_dq_report.py)
