module example.com/b

replace (
	example.com/pkg => ../../pkg // shared
	example.com/a => ../a
	example.com/x v1.0.0 => example.com/y v1.1.0
)
