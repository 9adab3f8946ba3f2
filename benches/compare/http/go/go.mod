module httppeer

go 1.19
