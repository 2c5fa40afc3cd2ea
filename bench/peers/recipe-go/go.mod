module sluice/bench/recipe

go 1.19
