# vigil console's JSON API against the real PostgreSQL: role matrix, CSRF,
# sessions, lockout, tokens, bad input, markup, pagination.
vigil_script_test(console_api LABEL "integration;security" TIMEOUT 180
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_console_api.py)
# The limiter: 200 clients over the limit get 503 + Retry-After in ~500 ms.
vigil_script_test(console_limiter LABEL integration TIMEOUT 120
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_console_limiter.py)
# console/openapi.yaml against the real server: every path, method, status, body.
vigil_script_test(console_openapi LABEL integration TIMEOUT 120
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_console_openapi.py)
# The pages: served from the binary, CSP without unsafe-inline, no inline
# code, labelled controls, text never turned into HTML; the page's API flow.
vigil_script_test(console_pages LABEL "integration;security" TIMEOUT 60
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_console_pages.py)
# Trusted-proxy mode: the identity header only from the proxy's address.
vigil_script_test(console_proxy LABEL "integration;security" TIMEOUT 60
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_console_proxy.py)
# Password reset by an e-mailed single-use link, through the real SMTP server.
vigil_script_test(console_reset LABEL "integration;security" TIMEOUT 90
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_console_reset.py)
# vigil directory import: CSV, idempotent, all or nothing, errors name the line.
vigil_script_test(directory_import LABEL integration TIMEOUT 60
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_directory_import.py)
# The pages in a real browser (headless chromium + Selenium): sign in, the
# queue, acknowledge with the button, the subject's SVG chart, no CSP error;
# screenshots in build/artifacts/console/.
vigil_script_test(console_browser LABEL integration TIMEOUT 180
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_console_browser.py)
# The live queue: Server-Sent Events of the caller's studies only, heartbeats,
# a bound on open streams, a clean end on SIGTERM.
vigil_script_test(console_stream LABEL "integration;security" TIMEOUT 90
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_console_stream.py)
# console/coalesce: identical reads share one execution only when it is as
# fresh as the request's own; a failed one is run again by who waited.
vigil_test(console_coalesce LABEL integration TIMEOUT 60
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_coalesce.c)
set_tests_properties(console_coalesce PROPERTIES LABELS "integration;kit")
