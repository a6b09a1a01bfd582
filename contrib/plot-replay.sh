#!/usr/bin/env bash
# plot-replay.sh - draw the curve that `mlbench replay --inflate P --csv FILE`
# writes: GPU allocated (% of capacity) against the GPU demand that arrived
# (% of capacity), one line per policy, as in Weng et al. (ATC '23).
#
#   contrib/plot-replay.sh CURVE.csv [OUT.png|OUT.svg|-]    (- : text plot on the terminal)
#
# Needs gnuplot (Debian/Ubuntu: apt-get install gnuplot-nox).
set -eu

usage() {
	echo "usage: $0 CURVE.csv [OUT.png|OUT.svg|-]" >&2
	exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
csv=$1
out=${2:-${csv%.csv}.png}
[ -r "$csv" ] || { echo "$0: cannot read $csv" >&2; exit 2; }
if ! command -v gnuplot >/dev/null 2>&1; then
	echo "$0: gnuplot is not installed; install it with:" >&2
	echo "    sudo apt-get install gnuplot-nox     # Debian, Ubuntu" >&2
	echo "    sudo dnf install gnuplot             # Fedora" >&2
	exit 1
fi
header=$(head -n 1 "$csv")
case $header in
arrived_pct,*) ;;
*) echo "$0: $csv does not look like mlbench's curve (first column arrived_pct)" >&2; exit 2 ;;
esac
ncols=$(awk -F, 'NR == 1 { print NF; exit }' "$csv")

case $out in
-) term="set terminal dumb size 100,32" ;;
*.svg) term="set terminal svg size 900,560 dynamic; set output '$out'" ;;
*.png)
	if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
		term="set terminal pngcairo size 900,560; set output '$out'"
	else
		term="set terminal png size 900,560; set output '$out'"
	fi
	;;
*) echo "$0: output must end in .png or .svg, or be -" >&2; exit 2 ;;
esac

gnuplot <<GP
$term
set datafile separator ","
set key autotitle columnhead left top
set title "GPU allocation as the arrived workload grows ($(basename "$csv"))"
set xlabel "arrived GPU demand, % of capacity"
set ylabel "GPU allocated, % of capacity"
set grid
set yrange [*:100]
plot for [i=2:$ncols] '$csv' using 1:i with linespoints
GP
[ "$out" = - ] || echo "wrote $out"
