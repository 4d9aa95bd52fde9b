# vigil mllp over TLS with client certificates (issue 16): the listener's
# own CA and certificates made with openssl; needs scripts/services for the
# broker and PostgreSQL. A client with the CA's certificate gets AA; no
# certificate, another CA's, and plain MLLP on the TLS port get no ACK.
vigil_script_test(mllp_tls LABEL security TIMEOUT 120
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tests/integration/test_mllp.py tls)
