module f2s.local/bench/gowatchdog

go 1.22
