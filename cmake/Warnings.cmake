# A picky build, as curl's PickyWarnings: warnings that catch real bugs,
# errors in CI (VIGIL_WERROR, on by default).
function(vigil_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
    -Wpointer-arith -Wvla -Wundef -Wcast-align -Wwrite-strings
    -Wno-unused-parameter -Wno-format-nonliteral)
  if(VIGIL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
