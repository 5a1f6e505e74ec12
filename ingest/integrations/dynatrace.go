package integrations

import "github.com/labstack/echo/v5"

// routeDynatrace registers the route(s) of this tool. STUB: being written.
func (r *Routes) routeDynatrace(e *echo.Echo) {}
