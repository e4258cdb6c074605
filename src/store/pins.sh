# --- pins: which bundle pinned what, and --replace (spliced into restore.sh by ferry) ---

# lock_id FILE: the sha256 of a ferry.lock (of nothing when FILE is absent), the bundle's
# identity in the pin records.
lock_id() {
  if [ -f "$1" ]; then
    sum=$(sha256sum <"$1" 2>/dev/null) || return 1
  else
    sum=$(printf '' | sha256sum 2>/dev/null) || return 1
  fi
  sum=${sum%% *}
  case $sum in *[!0-9a-f]*|'') return 1 ;; esac
  [ ${#sum} -eq 64 ] || return 1
  echo "sha256:$sum"
}

# record_key ID: the containerd label that says bundle ID pinned an image.
record_key() { echo "io.ferry.pinned-by.sha256-${1#sha256:}"; }

# lock_images LOCK: the images of a ferry.lock, "REFERENCE DIGEST" a line. The JSON is read as
# data: split at its structural characters, only the "reference" and "digest" members of the
# image objects (depth 3: root, images, image) are taken, and each is checked before use.
lock_images() {
  awk '
    { text = text $0 "\n" }
    END {
      gsub(/[][{},]/, "\n&\n", text)
      n = split(text, part, "\n")
      depth = 0
      for (i = 1; i <= n; i++) {
        t = part[i]
        if (t == "{" || t == "[") { depth++; if (depth == 3) { ref = ""; dig = "" }; continue }
        if (t == "}" || t == "]") {
          if (depth == 3 && ref != "" && dig != "") print ref, dig
          depth--
          continue
        }
        if (depth != 3) continue
        if (match(t, /^[ \t]*"reference"[ \t]*:[ \t]*"/)) { ref = substr(t, RLENGTH + 1); sub(/"[ \t]*$/, "", ref) }
        if (match(t, /^[ \t]*"digest"[ \t]*:[ \t]*"/)) { dig = substr(t, RLENGTH + 1); sub(/"[ \t]*$/, "", dig) }
      }
    }' "$1" | while read -r ref digest; do
    if valid_line "$ref" "$digest" x 0 -; then
      printf '%s %s\n' "$ref" "$digest"
    else
      log "$1: skipping an image entry that is not a reference and a digest"
    fi
  done
}

# names_of: for "REFERENCE DIGEST ..." lines, both names of each image, sorted.
names_of() {
  while read -r ref digest rest; do
    printf '%s\n%s@%s\n' "$ref" "$(repository "$ref")" "$digest"
  done | sort -u
}

# prepare_pins: this bundle's record id, and with --replace the names OLD had and this bundle
# has not ($tmp/gone) and those both have ($tmp/shared). Runs before anything is imported.
prepare_pins() {
  new_id='' old_id=''
  [ "$pin" = 1 ] || return 0
  if ! new_id=$(lock_id "$here/ferry.lock"); then
    [ -z "$replace" ] || die "--replace needs sha256sum (coreutils or busybox)"
    log "no sha256sum: the pins are not recorded per bundle"
    new_id=''
    return 0
  fi
  [ -n "$replace" ] || return 0
  old_id=$(lock_id "$replace") || die "cannot read $replace"
  [ "$old_id" != "$new_id" ] || die "--replace $replace is this bundle's own ferry.lock"
  lock_images "$replace" >"$tmp/old-images"
  [ -s "$tmp/old-images" ] || die "--replace $replace: no images in it (is it a ferry.lock?)"
  names_of <"$tmp/old-images" >"$tmp/old-names"
  names_of <"$tmp/images" >"$tmp/new-names"
  comm -23 "$tmp/old-names" "$tmp/new-names" >"$tmp/gone"
  comm -12 "$tmp/old-names" "$tmp/new-names" >"$tmp/shared"
}

# --- containerd ---

# replace_containerd: unpins (and with --remove deletes) the names OLD alone had; a name
# another bundle's record still pins stays pinned. OLD's record leaves every name.
replace_containerd() {
  old_key=$(record_key "$old_id")
  ctr_ -n "$namespace" images ls 2>/dev/null | awk 'NR > 1 { print $1, $3, $NF }' >"$tmp/now"
  # Digests that containers use (through any name): never deleted.
  ctr_ -n "$namespace" containers ls 2>/dev/null | awk 'NR > 1 { print $2 }' >"$tmp/used-names"
  awk 'FNR == NR { used[$1] = 1; next } ($1 in used) { print $2 }' "$tmp/used-names" "$tmp/now" >"$tmp/used"
  unpinned=0 removed=0
  while read -r name; do
    row=$(awk -v n="$name" '$1 == n { print $2, $3 }' "$tmp/now")
    [ -n "$row" ] || continue
    digest=${row%% *} labels=${row#* }
    others=$(printf '%s\n' "$labels" | tr , '\n' | grep '^io[.]ferry[.]pinned-by[.]' | grep -v "^$old_key=" | sed 's/^io[.]ferry[.]pinned-by[.]sha256-\([0-9a-f]*\)=.*/sha256:\1/' | tr '\n' ' ') || :
    if [ -n "$others" ]; then
      ctr_ -n "$namespace" images label "$name" "$old_key=" >/dev/null || failed=1
      log "$name: stays pinned for ${others% }"
      continue
    fi
    ctr_ -n "$namespace" images label "$name" io.cri-containerd.pinned= "$old_key=" >/dev/null ||
      { log "$name: cannot unpin it"; failed=1; continue; }
    unpinned=$((unpinned + 1))
    if [ "$remove" != 1 ]; then
      log "$name unpinned (only $old_id had it)"
    elif grep -qxF "$digest" "$tmp/used"; then
      log "$name unpinned, kept: a container uses it"
    elif ctr_ -n "$namespace" images rm --sync "$name" >/dev/null; then
      removed=$((removed + 1))
      log "$name unpinned and removed"
    else
      log "$name unpinned; cannot remove it"; failed=1
    fi
  done <"$tmp/gone"
  # OLD's record leaves every other name (a tag copies its labels to the digest name).
  awk -v k="$old_key=" 'index("," $3, "," k) { print $1 }' "$tmp/now" | grep -vxF -f "$tmp/gone" >"$tmp/old-records" || :
  while read -r name; do
    ctr_ -n "$namespace" images label "$name" "$old_key=" >/dev/null || failed=1
  done <"$tmp/old-records"
  log "replaced $old_id: $unpinned name(s) unpinned, $removed removed, $(wc -l <"$tmp/shared" | tr -d ' ') shared name(s) stay pinned"
}

# --- CRI-O ---

# crio_pins FILE: rewrites CRI-O's pinned_images drop-in: the names pinned before, each with
# the bundles that pinned it (a comment: a later drop-in would replace the whole list, so one
# file holds every bundle's pins), plus this bundle's serving images; with --replace, OLD's
# record leaves every name and a name OLD alone had leaves the list ($tmp/dropped).
crio_pins() {
  file=$1
  names_of <"$tmp/serving" >"$tmp/pin-names"
  [ -f "$tmp/gone" ] || : >"$tmp/gone"
  : >"$tmp/dropped"
  {
    if [ -f "$file" ]; then
      sed -n 's/^ *"\([^"]*\)",[ ]*#\{0,1\}\(.*\)$/\1 \2/p' "$file"
    fi
  } | awk -v new="${new_id:--}" -v old="$old_id" -v gonefile="$tmp/gone" -v addfile="$tmp/pin-names" -v dropfile="$tmp/dropped" '
    BEGIN {
      while ((getline l < gonefile) > 0) gone[l] = 1
      while ((getline l < addfile) > 0) ids[l] = ids[l] " " new
    }
    { name = $1; ids[name] = ids[name]; for (i = 2; i <= NF; i++) ids[name] = ids[name] " " $i }
    END {
      for (name in ids) {
        n = split(ids[name], list, " "); kept = ""; seen = ""
        for (i = 1; i <= n; i++) {
          id = list[i]
          if (id == "" || id == "-" || id == old || index(" " seen " ", " " id " ")) continue
          seen = seen " " id; kept = kept " " id
        }
        if ((name in gone) && kept == "") { print name > dropfile; continue }
        print name kept
      }
    }' | sort >"$tmp/pinned"
  {
    echo "# Written by ferry: images kept from kubelet's image GC, each with the ferry.lock"
    echo "# digests of the bundles that pinned it."
    echo "[crio.image]"
    echo "pinned_images = ["
    while read -r name ids; do
      if [ -n "$ids" ]; then printf '  "%s", # %s\n' "$name" "$ids"; else printf '  "%s",\n' "$name"; fi
    done <"$tmp/pinned"
    echo "]"
  } >"$file.ferry-tmp" || die "cannot write $file.ferry-tmp"
  mv "$file.ferry-tmp" "$file" || die "cannot write $file"
}

# crio_remove: with --replace --remove, deletes from containers-storage each image whose
# reference left the pin list, unless this bundle has the same image under another name
# (containers-storage deletes an image with all its names) or a container uses it.
crio_remove() {
  while read -r ref digest; do
    grep -qxF "$ref" "$tmp/dropped" || continue
    if awk -v d="$digest" '$2 == d { found = 1 } END { exit !found }' "$tmp/images"; then
      log "$ref: kept: this bundle has the same image"
    elif skopeo delete "containers-storage:${FERRY_CONTAINERS_STORAGE:-}$ref" >"$tmp/delete.log" 2>&1; then
      log "$ref removed"
    else
      log "$ref: kept: $(tail -n 1 "$tmp/delete.log")"
    fi
  done <"$tmp/old-images"
}
