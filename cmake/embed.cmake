# Turns the file IN into a C source OUT defining sl__demo_page[] and sl__demo_page_len.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from web/index.html by cmake/embed.cmake. */\n#include <stddef.h>\nconst char sl__demo_page[] = {\n${body}0};\nconst size_t sl__demo_page_len = ${len};\n")
