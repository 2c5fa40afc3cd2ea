# Shared look of the benchmark plots; each script loads it first. Callers pass with -e:
# datadir (the run's data/), out (the PNG to write) and peers (space-separated peer names).
set terminal pngcairo size 1000,600 enhanced font 'DejaVu Sans,11' noenhanced
set output out
set key top left box opaque
set grid ytics lc rgb '#dddddd'
set border 3
set tics nomirror
set datafile missing '?'
# One colour per peer, the same in every plot.
peer_color(p) = p eq 'sluice' ? '#1f77b4' : p eq 'sluice-1w' ? '#17becf' : p eq 'recipe' ? '#ff7f0e' : p eq 'nchan' ? '#2ca02c' : p eq 'pushpin' ? '#9467bd' : '#7f7f7f'
peer_rgb(p) = p eq 'sluice' ? 0x1f77b4 : p eq 'sluice-1w' ? 0x17becf : p eq 'recipe' ? 0xff7f0e : p eq 'nchan' ? 0x2ca02c : p eq 'pushpin' ? 0x9467bd : 0x7f7f7f
