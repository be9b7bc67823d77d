module example.com/pkg
