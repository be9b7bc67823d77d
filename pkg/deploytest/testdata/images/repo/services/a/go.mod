module example.com/a

require example.com/pkg v0.0.0

replace example.com/pkg => ../../pkg
