-- sqlite_heavy.sql — a million-row workload for the sqlite3 shell, run by compare.sh with
-- and without liballocprof.so; the output (aggregates, an index, group by, a join, sorting)
-- must be identical. Deterministic: all data comes from a recursive CTE.
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, val INTEGER, name TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
INSERT INTO t(id, grp, val, name)
SELECT i, i % 1000, (i * 7919) % 100003,
       'name-' || (i * 31 % 5003) || '-'
           || substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26, 1 + i % 7)
FROM n;
SELECT count(*), sum(val), min(val), max(val), avg(length(name)) FROM t;
CREATE INDEX t_grp_val ON t(grp, val);
SELECT grp, count(*), sum(val), max(name) FROM t WHERE grp IN (0, 1, 499, 998)
GROUP BY grp ORDER BY grp;
SELECT name, count(*) AS c FROM t GROUP BY name ORDER BY c DESC, name LIMIT 5;
CREATE TABLE g AS
SELECT grp, sum(val) AS s, group_concat(id % 10, '') AS digits FROM t GROUP BY grp;
SELECT count(*), sum(s), sum(length(digits)) FROM g;
SELECT t.grp, g.s FROM t JOIN g ON g.grp = t.grp WHERE t.id % 100000 = 0 ORDER BY t.id;
SELECT val FROM t ORDER BY val DESC, id LIMIT 3;
PRAGMA quick_check;
