# cmake -DIN=file -DOUT=file.c -DSYM=name -P EmbedFile.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} */\n#include <stddef.h>\nconst char ${SYM}[] = {${bytes}0x00};\nconst size_t ${SYM}_size = ${size};\n")
