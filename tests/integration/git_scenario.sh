#!/usr/bin/env bash
# git_scenario.sh — a deterministic git session for compare.sh: a fresh repository with a
# few hundred files, commits with fixed identities and dates (so every hash is the same
# on every run), log, diff, blame, grep, archive, repack, gc and fsck. Everything runs in a
# temporary directory; only deterministic output goes to stdout.
set -eu
export LC_ALL=C TZ=UTC
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME="Alloc Prof" GIT_AUTHOR_EMAIL="allocprof@example.invalid"
export GIT_COMMITTER_NAME="Alloc Prof" GIT_COMMITTER_EMAIL="allocprof@example.invalid"
export GIT_AUTHOR_DATE="2024-01-02T03:04:05Z" GIT_COMMITTER_DATE="2024-01-02T03:04:05Z"

dir="$(mktemp -d "${TMPDIR:-/tmp}/apgit.XXXXXX")"
trap 'rm -rf "$dir"' EXIT
export HOME="$dir"
cd "$dir"
git init -q -b main repo
cd repo
git config gc.auto 0
git config core.autocrlf false

# A few hundred files in nested directories, with content that deltas well.
for d in $(seq 0 9); do
    mkdir -p "src/d$d"
    for f in $(seq 0 39); do
        {
            echo "/* file $d/$f */"
            for l in $(seq 0 $(((d * 40 + f) % 30 + 5))); do
                echo "int v${d}_${f}_$l = $((l * 7 + f));"
            done
        } >"src/d$d/f$f.c"
    done
done
git add -A
git commit -q -m "initial: 400 files"

# Second commit: modify a tenth of the files, delete some, add some.
export GIT_AUTHOR_DATE="2024-01-03T03:04:05Z" GIT_COMMITTER_DATE="2024-01-03T03:04:05Z"
for d in $(seq 0 9); do
    sed -i 's/= 1;/= 100;/' "src/d$d/f$d.c"
    git rm -q "src/d$d/f39.c"
    printf 'new %d\n' "$d" >"src/d$d/new.txt"
done
git add -A
git commit -q -m "second: edit, remove, add"

# A branch and a merge.
export GIT_AUTHOR_DATE="2024-01-04T03:04:05Z" GIT_COMMITTER_DATE="2024-01-04T03:04:05Z"
git checkout -q -b topic
echo "topic line" >>src/d3/f3.c
git commit -q -am "topic change"
git checkout -q main
echo "main line" >>src/d5/f5.c
git commit -q -am "main change"
git merge -q --no-edit topic

echo "== log"
git log --format='%H %an %ad %s' --date=iso-strict --graph
echo "== rev-parse"
git rev-parse HEAD HEAD^{tree}
echo "== diff --stat HEAD~3..HEAD"
git diff --stat HEAD~3 HEAD | tail -n 3
echo "== diff of one file"
git diff HEAD~3 HEAD -- src/d3/f3.c
echo "== ls-tree"
git ls-tree -r HEAD | wc -l
git ls-tree -r HEAD | sha256sum
echo "== grep"
git grep -c 'v4_1[0-9]_3 ' HEAD | head -n 5
echo "== blame"
git blame -s src/d5/f5.c | tail -n 3
echo "== archive"
git archive --format=tar HEAD | sha256sum
echo "== repack and gc"
git repack -q -a -d -f
git gc -q --prune=now
git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
echo "== fsck"
git fsck --full --no-dangling --no-progress 2>&1
echo "== status"
git status --porcelain
echo "== cat-file"
git cat-file -p HEAD | sed -n '1,5p'
