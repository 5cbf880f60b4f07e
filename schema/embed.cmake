# Turns schema/schema.sql into a C header with the SQL as a string (OUT), and
# the schema version from its first line ("schema version N") into a header of
# its own (schema_version.h beside it), which the command includes too.
file(READ ${IN} sql)
string(REGEX MATCH "schema version ([0-9]+)" _ "${sql}")
set(version ${CMAKE_MATCH_1})
# Comments and indentation are dropped: SQLite keeps each CREATE statement's
# text in every profile (sqlite_schema), and the commented text took 8 of a
# small profile's 21 pages. schema/schema.sql (and docs/schema.md) keep them.
string(REGEX REPLACE "--[^\n]*" "" sql "${sql}")
string(REGEX REPLACE "[ \t\r\n]+" " " sql "${sql}")
file(WRITE ${OUT}.sql "${sql}")
file(READ ${OUT}.sql hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
get_filename_component(dir ${OUT} DIRECTORY)
file(WRITE ${dir}/schema_version.h "/* generated from schema/schema.sql; do not edit */\n"
  "#define AP_SCHEMA_VERSION ${version}\n")
file(WRITE ${OUT} "/* generated from schema/schema.sql; do not edit */\n"
  "#include \"schema_version.h\"\n"
  "static const char ap_schema_sql[] = {${bytes} 0};\n")
