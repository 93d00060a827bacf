#!/bin/sh
# For every input file, write "<lines> <words>" to the output repo under the same name.
in="${PFS_IN:-/pfs/images}"
out="${PFS_OUT:-/pfs/out}"
for file in "$in"/*; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    set -- $(wc -l -w < "$file")
    echo "$1 $2" > "$out/$name"
done
