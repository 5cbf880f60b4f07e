# Turns schema/schema.sql into a C header with the SQL as a string and the
# schema version (from its first line, "schema version N").
file(READ ${IN} sql)
string(REGEX MATCH "schema version ([0-9]+)" _ "${sql}")
set(version ${CMAKE_MATCH_1})
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from schema/schema.sql; do not edit */\n"
  "#define AP_SCHEMA_VERSION ${version}\n"
  "static const char ap_schema_sql[] = {${bytes} 0};\n")
