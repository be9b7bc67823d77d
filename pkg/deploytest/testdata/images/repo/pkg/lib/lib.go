package lib

import _ "embed"

//go:embed data.txt
var Data string
