# TLS on every outside connection (issue 7, item 5). Each test makes its own
# CA and certificates with openssl and starts its own TLS server on
# 127.0.0.1; only tls_notifier_smtp also needs scripts/services (for the
# broker and PostgreSQL the notifier reads from).
#   tls_kafka  own KRaft broker, SASL_SSL listener (PLAIN inside TLS; see the
#              script for why not SCRAM): vigil produce with the right CA,
#              a wrong CA, a wrong password (~25 s)
#   kafka_scram  own Kafka 3.9.1 KRaft broker (scripts/fetch-kafka --line 3.9;
#              librdkafka 2.0.2 cannot do SCRAM against 4.x), SASL_SSL with
#              SCRAM-SHA-512 and -256, the password from a file
#              (VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE): vigil produce with each
#              mechanism, a wrong password, a wrong CA (~35 s)
#   tls_pg     own PostgreSQL cluster, hostssl only: vigil migrate with
#              sslmode=verify-full, a wrong CA, a host name the certificate
#              does not name, no TLS (~2 s)
#   tls_smtp   own aiosmtpd with required STARTTLS: the notifier's email
#              transfer (email_easy_setup + smtp_ca_file) with the right CA,
#              a wrong CA, no CA file, TLS off (~1 s)
#   tls_notifier_smtp  the real vigil notifier (smtp_tls=require,
#              smtp_ca_file) delivering an alert through that server with
#              the right CA, and refusing with a wrong one (~3 s)
set(_py /usr/bin/python3)
set(_sec ${CMAKE_CURRENT_LIST_DIR})

vigil_script_test(tls_kafka LABEL security TIMEOUT 120
  COMMAND ${_py} ${_sec}/test_kafka_tls.py)
vigil_script_test(kafka_scram LABEL security TIMEOUT 120
  COMMAND ${_py} ${_sec}/test_kafka_scram.py)
vigil_script_test(tls_pg LABEL security TIMEOUT 60
  COMMAND ${_py} ${_sec}/test_pg_tls.py)

add_executable(smtp_send_tool ${_sec}/smtp_send_tool.c)
target_link_libraries(smtp_send_tool PRIVATE vigil_alerting vigil_common)
vigil_warnings(smtp_send_tool)
vigil_script_test(tls_smtp LABEL security TIMEOUT 60
  COMMAND ${_py} ${_sec}/test_smtp_tls.py $<TARGET_FILE:smtp_send_tool>)
vigil_script_test(tls_notifier_smtp LABEL security TIMEOUT 90
  COMMAND ${_py} ${_sec}/test_notifier_smtp_tls.py)
