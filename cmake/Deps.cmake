# Every dependency comes from Debian's packages through pkg-config. A missing
# one stops configuration with the name of the package that provides it.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package pkg-config")
endif()
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)

add_library(vigil_deps INTERFACE)

# module name ; Debian package
set(_vigil_deps
  "rdkafka;librdkafka-dev"
  "avro-c;libavro-dev"
  "libpq;libpq-dev"
  "libcurl;libcurl4-openssl-dev"
  "libmicrohttpd;libmicrohttpd-dev"
  "yaml-0.1;libyaml-dev"
  "jansson;libjansson-dev"
  # SHA-256 (libcrypto: dead-letter digests, vigil mllp's observation ids);
  # vigil mllp: TLS for MLLP (libssl) and thread-safe time zones for HL7
  # times without an offset (GLib's GTimeZone: libc's mktime reads the
  # process-global TZ).
  "libcrypto;libssl-dev"
  "libssl;libssl-dev"
  "glib-2.0;libglib2.0-dev"
  # vigil console: Argon2id password hashes, random tokens (libsodium)
  "libsodium;libsodium-dev")

set(_i 0)
list(LENGTH _vigil_deps _n)
while(_i LESS _n)
  list(GET _vigil_deps ${_i} _mod)
  math(EXPR _j "${_i} + 1")
  list(GET _vigil_deps ${_j} _pkg)
  string(MAKE_C_IDENTIFIER "${_mod}" _var)
  pkg_check_modules(DEP_${_var} QUIET IMPORTED_TARGET ${_mod})
  if(NOT DEP_${_var}_FOUND)
    message(FATAL_ERROR "could not find ${_mod} with pkg-config: install the Debian package ${_pkg} (scripts/setup does)")
  endif()
  message(STATUS "found ${_mod} ${DEP_${_var}_VERSION}")
  target_link_libraries(vigil_deps INTERFACE PkgConfig::DEP_${_var})
  math(EXPR _i "${_i} + 2")
endwhile()
